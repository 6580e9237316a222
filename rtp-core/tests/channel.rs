//! The media channel through its public API, in simulated time: latching and
//! hijack refusal in each mode, re-INVITEs, malformed input, DTMF, the relayed stream's
//! continuity, RTCP timing and contents, round-trip time and the RTP timeout.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use bytes::Bytes;
use pbxkit_rtp::channel::{
    Channel, ChannelConfig, DropReason, Event, Latching, Received, Transmit, TransmitKind,
};
use pbxkit_rtp::dtmf::{DtmfSender, EventCode, SenderConfig};
use pbxkit_rtp::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use pbxkit_rtp::rtcp::{self, NtpTime, ReceiverReport, ReportBlock, RtcpPacket, SenderReport};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PHONE: &str = "192.0.2.10:4000";
const NAT: &str = "198.51.100.7:31000";
const HIJACKER: &str = "203.0.113.66:5004";
const TE: u8 = 101;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(latching: Latching, remote: Option<&str>) -> ChannelConfig {
    let mut c = ChannelConfig::new(PayloadType::PCMU, 8000, 0xA5A5_0000_1234_5678);
    c.latching = latching;
    c.remote = remote.map(addr);
    c.telephone_event = PayloadType::new(TE);
    c
}

/// A far end sending a 20 ms PCMU stream.
struct Sender {
    from: SocketAddr,
    ssrc: Ssrc,
    seq: u16,
    ts: u32,
}

impl Sender {
    fn new(from: &str, ssrc: u32, seq: u16) -> Sender {
        Sender {
            from: addr(from),
            ssrc: Ssrc(ssrc),
            seq,
            ts: u32::from(seq) * 160,
        }
    }

    fn packet(&mut self) -> Bytes {
        let p = RtpPacket::new(
            PayloadType::PCMU,
            SeqNo(self.seq),
            RtpTimestamp(self.ts),
            self.ssrc,
            Bytes::from_static(&[0xFF; 160]),
        );
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        p.to_bytes()
    }

    fn send(&mut self, ch: &mut Channel, now: Instant) -> Received {
        let p = self.packet();
        ch.receive(p, self.from, now)
    }
}

fn events(ch: &mut Channel) -> Vec<Event> {
    std::iter::from_fn(|| ch.poll_event()).collect()
}

fn is_media(r: &Received) -> bool {
    matches!(r, Received::Media(_))
}

/// Runs the channel's timers up to `until`, returning what it sent and when.
fn run_until(ch: &mut Channel, until: Instant) -> Vec<(Instant, Transmit)> {
    let mut out = Vec::new();
    while let Some(deadline) = ch.poll_timeout() {
        if deadline > until {
            break;
        }
        ch.handle_timeout(deadline);
        while let Some(t) = ch.poll_transmit() {
            out.push((deadline, t));
        }
    }
    out
}

fn rtcp_of(t: &Transmit) -> Vec<RtcpPacket> {
    assert_eq!(t.kind, TransmitKind::Rtcp);
    rtcp::parse_compound(t.payload.clone()).unwrap()
}

#[test]
fn strict_accepts_only_the_sdp_address() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Strict, Some(PHONE)), t0);
    let mut phone = Sender::new(PHONE, 1, 100);
    let mut other_port = Sender::new("192.0.2.10:4002", 2, 100);
    let mut stranger = Sender::new(HIJACKER, 3, 100);
    assert_eq!(
        stranger.send(&mut ch, t0),
        Received::Dropped(DropReason::Foreign)
    );
    assert_eq!(ch.latched(), None);
    // The first packet from the SDP address latches: no probation for it.
    assert!(is_media(&phone.send(&mut ch, t0 + ms(20))));
    assert_eq!(events(&mut ch), [Event::Latched { addr: addr(PHONE) }]);
    assert_eq!(
        other_port.send(&mut ch, t0 + ms(30)),
        Received::Dropped(DropReason::Foreign)
    );
    assert!(is_media(&phone.send(&mut ch, t0 + ms(40))));
    let q = ch.quality();
    assert_eq!((q.packets_received, q.foreign, q.learning), (2, 2, 0));
    assert_eq!(q.octets_received, 320);
    assert_eq!(ch.destination(), Some(addr(PHONE)));
    assert_eq!(ch.remote_ssrc(), Some(Ssrc(1)));
}

#[test]
fn strict_without_sdp_accepts_nothing_until_set_remote() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Strict, None), t0);
    let mut phone = Sender::new(PHONE, 1, 1);
    for i in 0..10 {
        assert_eq!(
            phone.send(&mut ch, t0 + ms(20 * i)),
            Received::Dropped(DropReason::Foreign)
        );
    }
    assert_eq!(ch.destination(), None);
    ch.set_remote(addr(PHONE));
    assert!(is_media(&phone.send(&mut ch, t0 + ms(200))));
    assert_eq!(ch.latched(), Some(addr(PHONE)));
}

#[test]
fn same_ip_learns_the_port_but_never_leaves_the_ip() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::SameIp, Some(PHONE)), t0);
    let mut phone = Sender::new("192.0.2.10:4010", 1, 1);
    let mut stranger = Sender::new(HIJACKER, 2, 1);
    for i in 0..3 {
        assert_eq!(
            phone.send(&mut ch, t0 + ms(20 * i)),
            Received::Dropped(DropReason::Learning)
        );
    }
    assert!(is_media(&phone.send(&mut ch, t0 + ms(60))));
    assert_eq!(ch.latched(), Some(addr("192.0.2.10:4010")));
    // Another IP never gets in, however long the phone is silent.
    for i in 0..20 {
        assert_eq!(
            stranger.send(&mut ch, t0 + Duration::from_secs(5) + ms(20 * i)),
            Received::Dropped(DropReason::Foreign)
        );
    }
    assert_eq!(ch.latched(), Some(addr("192.0.2.10:4010")));
}

#[test]
fn comedia_probation_three_packets_are_not_enough_four_are() {
    let t0 = Instant::now();
    // SDP says a private address; the packets come from the NAT's public one.
    let mut ch = Channel::new(config(Latching::Comedia, Some("10.0.0.5:4000")), t0);
    let mut phone = Sender::new(NAT, 7, 500);
    for i in 0..3 {
        assert_eq!(
            phone.send(&mut ch, t0 + ms(20 * i)),
            Received::Dropped(DropReason::Learning)
        );
        assert_eq!(ch.latched(), None);
        // Until latched, we send where SDP said.
        assert_eq!(ch.destination(), Some(addr("10.0.0.5:4000")));
    }
    assert!(is_media(&phone.send(&mut ch, t0 + ms(60))));
    assert_eq!(events(&mut ch), [Event::Latched { addr: addr(NAT) }]);
    assert_eq!(ch.destination(), Some(addr(NAT)));
    let q = ch.quality();
    assert_eq!((q.learning, q.foreign, q.packets_received), (3, 0, 1));
}

#[test]
fn comedia_interrupted_sequence_restarts_probation() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Comedia, None), t0);
    let mut phone = Sender::new(NAT, 7, 500);
    let mut other = Sender::new(HIJACKER, 9, 1);
    let mut at = t0;
    let mut step = |ch: &mut Channel, s: &mut Sender| {
        at += ms(20);
        s.send(ch, at)
    };
    // Three in order, then a gap in the sequence: probation starts over at that packet.
    for _ in 0..3 {
        step(&mut ch, &mut phone);
    }
    phone.seq += 1;
    phone.ts += 160;
    for _ in 0..3 {
        assert!(!is_media(&step(&mut ch, &mut phone)));
    }
    // Another source in between does not break the run: each source has its own.
    step(&mut ch, &mut other);
    assert_eq!(ch.latched(), None);
    assert!(is_media(&step(&mut ch, &mut phone)));
    assert_eq!(ch.latched(), Some(addr(NAT)));

    // A change of SSRC restarts the run too.
    let mut ch = Channel::new(config(Latching::Comedia, None), t0);
    let mut phone = Sender::new(NAT, 7, 500);
    for i in 0..3 {
        phone.send(&mut ch, t0 + ms(20 * i));
    }
    phone.ssrc = Ssrc(8);
    for i in 3..6 {
        assert!(!is_media(&phone.send(&mut ch, t0 + ms(20 * i))));
    }
    assert!(is_media(&phone.send(&mut ch, t0 + ms(120))));
}

#[test]
fn comedia_sdp_address_latches_at_once() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Comedia, Some(PHONE)), t0);
    assert!(is_media(&Sender::new(PHONE, 1, 1).send(&mut ch, t0)));
    assert_eq!(ch.latched(), Some(addr(PHONE)));
}

/// A stranger who sprays the port before the phone sends wins the latch by
/// probation, and loses it at the phone's first packet from its SDP address.
#[test]
fn the_sdp_address_takes_the_latch_back_from_a_stranger_who_sent_first() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Comedia, Some(PHONE)), t0);
    let mut stranger = Sender::new(HIJACKER, 9, 500);
    for i in 0..6 {
        stranger.send(&mut ch, t0 + ms(i));
    }
    assert_eq!(ch.latched(), Some(addr(HIJACKER)));
    let _ = events(&mut ch);
    let now = t0 + ms(10);
    assert!(is_media(&Sender::new(PHONE, 1, 1).send(&mut ch, now)));
    assert_eq!(ch.latched(), Some(addr(PHONE)));
    assert_eq!(
        events(&mut ch),
        [Event::Relatched {
            from: addr(HIJACKER),
            to: addr(PHONE)
        }]
    );
    assert!(!is_media(&stranger.send(&mut ch, now + ms(1))));
}

/// A hijacker interleaving its packets (in order, its own SSRC) with the real stream
/// never takes the latch, in any mode.
#[test]
fn interleaved_hijacker_is_refused_in_every_mode() {
    for (mode, hijacker) in [
        (Latching::Strict, HIJACKER),
        (Latching::SameIp, "192.0.2.10:4444"),
        (Latching::Comedia, HIJACKER),
    ] {
        let t0 = Instant::now();
        let mut ch = Channel::new(config(mode, Some(PHONE)), t0);
        let mut phone = Sender::new(PHONE, 1, 1);
        let mut evil = Sender::new(hijacker, 2, 1);
        assert!(is_media(&phone.send(&mut ch, t0)));
        events(&mut ch);
        for i in 0..100 {
            let at = t0 + ms(20 * i + 10);
            assert_eq!(
                evil.send(&mut ch, at),
                Received::Dropped(DropReason::Foreign),
                "{mode:?} {i}"
            );
            assert!(is_media(&phone.send(&mut ch, at + ms(10))), "{mode:?}");
        }
        assert_eq!(ch.latched(), Some(addr(PHONE)), "{mode:?}");
        assert_eq!(events(&mut ch), [], "{mode:?}");
        let q = ch.quality();
        assert_eq!((q.foreign, q.packets_received), (100, 101), "{mode:?}");
    }
}

/// Bursts of four in order between the phone's packets: probation passes, but the
/// phone is not silent, so the latch stays.
#[test]
fn comedia_hijacker_bursts_while_the_phone_talks_are_refused() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Comedia, None), t0);
    let mut phone = Sender::new(NAT, 1, 1);
    for i in 0..4 {
        phone.send(&mut ch, t0 + ms(20 * i));
    }
    assert_eq!(ch.latched(), Some(addr(NAT)));
    let mut evil = Sender::new(HIJACKER, 2, 1);
    for i in 4..50 {
        let at = t0 + ms(20 * i);
        for k in 0..8 {
            assert_eq!(
                evil.send(&mut ch, at + ms(k)),
                Received::Dropped(DropReason::Foreign)
            );
        }
        assert!(is_media(&phone.send(&mut ch, at + ms(10))));
    }
    assert_eq!(ch.latched(), Some(addr(NAT)));
}

/// The phone falls silent (on hold, or gone) and another source sends in order.
/// Strict: never moves. Comedia: not before the phone has been silent for 1 s; after
/// that, probation (4 packets) moves the latch.
#[test]
fn hijacker_while_the_phone_is_silent_strict_never_comedia_after_one_second() {
    let t0 = Instant::now();
    let mut strict = Channel::new(config(Latching::Strict, Some(PHONE)), t0);
    let mut phone = Sender::new(PHONE, 1, 1);
    phone.send(&mut strict, t0);
    let mut evil = Sender::new(HIJACKER, 2, 1);
    for i in 0..500 {
        evil.send(&mut strict, t0 + ms(100 + 20 * i));
    }
    assert_eq!(strict.latched(), Some(addr(PHONE)));
    assert_eq!(strict.destination(), Some(addr(PHONE)));

    let mut comedia = Channel::new(config(Latching::Comedia, None), t0);
    let mut phone = Sender::new(NAT, 1, 1);
    for i in 0..4 {
        phone.send(&mut comedia, t0 + ms(20 * i));
    }
    events(&mut comedia);
    let last_phone = t0 + ms(60);
    let mut evil = Sender::new(HIJACKER, 2, 1);
    // Four in order 500 ms into the silence, then more up to 999 ms: refused.
    let mut at = last_phone + ms(500);
    while at < last_phone + ms(1000) {
        assert_eq!(
            evil.send(&mut comedia, at),
            Received::Dropped(DropReason::Foreign)
        );
        at += ms(20);
    }
    // Its run continues past 1 s of silence: the latch moves on this packet.
    let at = last_phone + ms(1000);
    assert!(is_media(&evil.send(&mut comedia, at)));
    assert_eq!(
        events(&mut comedia),
        [Event::Relatched {
            from: addr(NAT),
            to: addr(HIJACKER)
        }]
    );
    // After 1 s of silence a fresh source still needs its four packets.
    let mut c2 = Channel::new(config(Latching::Comedia, None), t0);
    let mut phone = Sender::new(NAT, 1, 1);
    for i in 0..4 {
        phone.send(&mut c2, t0 + ms(20 * i));
    }
    let mut evil = Sender::new(HIJACKER, 2, 1);
    let start = t0 + Duration::from_secs(5);
    for i in 0..3 {
        assert!(!is_media(&evil.send(&mut c2, start + ms(20 * i))));
    }
    assert!(is_media(&evil.send(&mut c2, start + ms(60))));
}

#[test]
fn set_remote_strict_moves_at_once() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Strict, Some(PHONE)), t0);
    let mut phone = Sender::new(PHONE, 1, 1);
    phone.send(&mut ch, t0);
    events(&mut ch);
    // A session refresh with the same address changes nothing.
    ch.set_remote(addr(PHONE));
    assert_eq!(events(&mut ch), []);
    let moved = "192.0.2.20:6000";
    ch.set_remote(addr(moved));
    assert_eq!(
        events(&mut ch),
        [Event::Relatched {
            from: addr(PHONE),
            to: addr(moved)
        }]
    );
    assert_eq!(ch.destination(), Some(addr(moved)));
    assert_eq!(
        phone.send(&mut ch, t0 + ms(20)),
        Received::Dropped(DropReason::Foreign)
    );
    assert!(is_media(
        &Sender::new(moved, 5, 1).send(&mut ch, t0 + ms(40))
    ));
}

#[test]
fn set_remote_comedia_follows_by_probation() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Comedia, Some("10.0.0.5:4000")), t0);
    let mut phone = Sender::new(NAT, 1, 1);
    for i in 0..4 {
        phone.send(&mut ch, t0 + ms(20 * i));
    }
    events(&mut ch);
    // Re-INVITE: the far end moved behind another NAT binding. The old stream still
    // trickles in; the new one wins after four packets, without waiting for silence.
    ch.set_remote(addr("10.0.0.6:4000"));
    assert_eq!(ch.destination(), Some(addr("10.0.0.6:4000")));
    let new_nat = "198.51.100.7:31002";
    let mut moved = Sender::new(new_nat, 2, 1000);
    for i in 0..3 {
        let at = t0 + ms(100 + 20 * i);
        assert!(!is_media(&phone.send(&mut ch, at)));
        assert!(!is_media(&moved.send(&mut ch, at + ms(1))));
    }
    assert!(is_media(&moved.send(&mut ch, t0 + ms(170))));
    assert_eq!(
        events(&mut ch),
        [Event::Relatched {
            from: addr(NAT),
            to: addr(new_nat)
        }]
    );
    // From now on the usual rule: the old source is foreign.
    assert_eq!(
        phone.send(&mut ch, t0 + ms(180)),
        Received::Dropped(DropReason::Foreign)
    );

    // A new SDP address that is where packets come from latches at its first packet.
    let mut ch = Channel::new(config(Latching::Comedia, Some(PHONE)), t0);
    Sender::new(PHONE, 1, 1).send(&mut ch, t0);
    events(&mut ch);
    ch.set_remote(addr("192.0.2.20:6000"));
    assert!(is_media(
        &Sender::new("192.0.2.20:6000", 2, 1).send(&mut ch, t0 + ms(20))
    ));
    assert_eq!(
        events(&mut ch),
        [Event::Relatched {
            from: addr(PHONE),
            to: addr("192.0.2.20:6000")
        }]
    );

    // The far end did not actually move: its stream wins again, and no event says it moved.
    let mut ch = Channel::new(config(Latching::Comedia, None), t0);
    let mut phone = Sender::new(NAT, 1, 1);
    for i in 0..4 {
        phone.send(&mut ch, t0 + ms(20 * i));
    }
    events(&mut ch);
    ch.set_remote(addr("10.0.0.9:4000"));
    for i in 4..8 {
        phone.send(&mut ch, t0 + ms(20 * i));
    }
    assert_eq!(ch.latched(), Some(addr(NAT)));
    assert_eq!(events(&mut ch), []);
}

#[test]
fn malformed_and_unexpected_are_counted_and_dropped() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Strict, Some(PHONE)), t0);
    let from = addr(PHONE);
    let cases: [&[u8]; 6] = [
        &[],
        &[0x80],
        &[0x80, 0, 0, 1, 0, 0],                   // RTP header cut short
        &[0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], // 15 CSRCs announced, none there
        &[0x81, 201, 0, 7, 0, 0, 0, 1],           // RR whose length runs past the datagram
        &[0xFF; 40],                              // not RTP at all
    ];
    for bytes in cases {
        assert_eq!(
            ch.receive(Bytes::copy_from_slice(bytes), from, t0),
            Received::Dropped(DropReason::Malformed),
            "{bytes:?}"
        );
    }
    // A payload type SDP did not negotiate (G.729, 18).
    let g729 = RtpPacket::new(
        PayloadType::new(18).unwrap(),
        SeqNo(1),
        RtpTimestamp(0),
        Ssrc(1),
        Bytes::new(),
    );
    assert_eq!(
        ch.receive(g729.to_bytes(), from, t0),
        Received::Dropped(DropReason::PayloadType)
    );
    let q = ch.quality();
    assert_eq!((q.malformed, q.unexpected_payload_type), (6, 1));
    assert_eq!(q.packets_received, 0);
    // None of it latched anything.
    assert_eq!(ch.latched(), None);
    assert_eq!(events(&mut ch), []);
    // Once the SDP lists it too, it is media.
    let mut cfg = config(Latching::Strict, Some(PHONE));
    cfg.also_accepted = vec![PayloadType::new(18).unwrap()];
    let mut ch = Channel::new(cfg, t0);
    assert!(matches!(
        ch.receive(g729.to_bytes(), from, t0),
        Received::Media(_)
    ));
}

#[test]
fn dtmf_digit_reported_once() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Strict, Some(PHONE)), t0);
    let mut phone = Sender::new(PHONE, 1, 1);
    phone.send(&mut ch, t0);
    events(&mut ch);
    let mut dtmf = DtmfSender::new(SenderConfig::default());
    let five = EventCode::from_char('5').unwrap();
    dtmf.start(t0, RtpTimestamp(phone.ts), five, ms(120))
        .unwrap();
    let mut sent = 0;
    while let Some(deadline) = dtmf.poll_timeout() {
        while let Some(p) = dtmf.poll_packet(deadline) {
            let rtp = p.to_rtp(PayloadType::new(TE).unwrap(), SeqNo(phone.seq), phone.ssrc);
            phone.seq += 1;
            assert!(is_media(&ch.receive(rtp.to_bytes(), addr(PHONE), deadline)));
            sent += 1;
        }
    }
    assert_eq!(sent, 6 + 2, "six packets, the end one three times");
    // Telephone events count in the sequence but, carrying the event's start
    // timestamp, not in the jitter.
    let q = ch.quality();
    assert_eq!((q.jitter, q.lost), (Duration::ZERO, 0));
    assert_eq!(
        events(&mut ch),
        [Event::Dtmf {
            digit: five,
            duration: ms(120)
        }]
    );
    // A late retransmission of the end packet adds nothing.
    let late = pbxkit_rtp::dtmf::TelephoneEvent {
        event: five,
        end: true,
        volume: 10,
        duration: 960,
    };
    let rtp = RtpPacket::new(
        PayloadType::new(TE).unwrap(),
        SeqNo(phone.seq),
        RtpTimestamp(phone.ts),
        phone.ssrc,
        Bytes::copy_from_slice(&late.to_bytes()),
    );
    ch.receive(rtp.to_bytes(), addr(PHONE), t0 + ms(500));
    assert_eq!(events(&mut ch), []);
}

/// A channel whose far end is known, to forward into.
fn outgoing(t0: Instant) -> Channel {
    Channel::new(config(Latching::Strict, Some(PHONE)), t0)
}

fn source_packet(ssrc: u32, seq: u16, ts: u32) -> RtpPacket {
    RtpPacket::new(
        PayloadType::PCMU,
        SeqNo(seq),
        RtpTimestamp(ts),
        Ssrc(ssrc),
        Bytes::from_static(&[0x55; 160]),
    )
}

fn forwarded(ch: &mut Channel, p: &RtpPacket, now: Instant) -> RtpPacket {
    let t = ch.forward(p, now).unwrap();
    assert_eq!((t.to, t.kind), (addr(PHONE), TransmitKind::Rtp));
    RtpPacket::parse(t.payload).unwrap()
}

#[test]
fn forward_keeps_one_stream_across_a_source_switch() {
    let t0 = Instant::now();
    let mut ch = outgoing(t0);
    let mut out = Vec::new();
    for i in 0..10u16 {
        let p = source_packet(0xAAAA, 40_000 + i, 1_000_000 + 160 * u32::from(i));
        out.push(forwarded(&mut ch, &p, t0 + ms(20 * u64::from(i))));
    }
    assert!(out[0].marker(), "first packet of the stream");
    for w in out.windows(2) {
        assert_eq!(w[1].sequence(), w[0].sequence().next());
        assert_eq!(w[1].timestamp().wrapping_diff(w[0].timestamp()), 160);
        assert!(!w[1].marker());
        assert_eq!(w[1].ssrc(), ch.ssrc());
    }
    let last = out[9].clone();
    // Re-bridged to another phone 300 ms later: new SSRC, unrelated numbers.
    let at = t0 + ms(180 + 300);
    let first_b = forwarded(&mut ch, &source_packet(0xBBBB, 7, 99), at);
    assert_eq!(first_b.ssrc(), ch.ssrc());
    assert_eq!(
        first_b.sequence(),
        last.sequence().next(),
        "no sequence jump"
    );
    assert_eq!(
        first_b.timestamp().wrapping_diff(last.timestamp()),
        2400,
        "300 ms at 8 kHz"
    );
    assert!(first_b.marker());
    let second_b = forwarded(&mut ch, &source_packet(0xBBBB, 8, 259), at + ms(20));
    assert_eq!(second_b.sequence(), first_b.sequence().next());
    assert_eq!(second_b.timestamp().wrapping_diff(first_b.timestamp()), 160);
    assert!(!second_b.marker());
    // A switch right away still advances by one frame, so timestamps never repeat.
    let first_c = forwarded(&mut ch, &source_packet(0xCCCC, 1, 0), at + ms(21));
    assert_eq!(first_c.sequence(), second_b.sequence().next());
    assert_eq!(first_c.timestamp().wrapping_diff(second_b.timestamp()), 160);
    // A re-bridge to a source that happens to have the same SSRC, marked by the caller.
    ch.mark_source_change();
    let first_d = forwarded(&mut ch, &source_packet(0xCCCC, 30_000, 5), at + ms(61));
    assert_eq!(first_d.sequence(), first_c.sequence().next());
    assert_eq!(first_d.timestamp().wrapping_diff(first_c.timestamp()), 320);
    assert!(first_d.marker());
    let q = ch.quality();
    assert_eq!((q.packets_sent, q.octets_sent), (14, 14 * 160));
}

#[test]
fn forward_preserves_gaps_and_reordering_within_a_source() {
    let t0 = Instant::now();
    let mut ch = outgoing(t0);
    let base = forwarded(&mut ch, &source_packet(1, 65_534, 0), t0);
    // Across the wrap: 65535, then 1 (0 missing), 3 (2 missing), then 0 and 2 late.
    let mut at = t0;
    for (seq, ts) in [(65_535u16, 160u32), (1, 480), (3, 800), (0, 320), (2, 640)] {
        at += ms(20);
        let p = forwarded(&mut ch, &source_packet(1, seq, ts), at);
        assert_eq!(
            p.sequence().wrapping_diff(base.sequence()),
            seq.wrapping_sub(65_534) as i16
        );
        assert_eq!(p.timestamp().wrapping_diff(base.timestamp()), ts as i32);
        assert!(!p.marker());
    }
    // The next source continues after the highest sequence sent (3, sent at 60 ms),
    // not after the late ones: 60 ms later than that is 480 units on.
    let next = forwarded(&mut ch, &source_packet(2, 9, 9), t0 + ms(120));
    assert_eq!(next.sequence().wrapping_diff(base.sequence()), 6);
    assert_eq!(next.timestamp().wrapping_diff(base.timestamp()), 800 + 480);
}

#[test]
fn forward_leaves_extensions_and_csrcs_behind() {
    use pbxkit_rtp::packet::{ExtensionElement, HeaderExtension};
    let t0 = Instant::now();
    let mut ch = outgoing(t0);
    let p = RtpPacket::builder(PayloadType::PCMU, SeqNo(1), RtpTimestamp(2), Ssrc(3))
        .csrc(Ssrc(4))
        .extension(HeaderExtension::OneByte(vec![ExtensionElement::new(
            1,
            Bytes::from_static(&[0x30]),
        )]))
        .padding(4)
        .payload(Bytes::from_static(&[1, 2, 3]))
        .build()
        .unwrap();
    let out = forwarded(&mut ch, &p, t0);
    assert_eq!(out.csrcs(), []);
    assert_eq!(out.extension(), None);
    assert_eq!(out.padding(), 0);
    assert_eq!(&out.payload()[..], [1, 2, 3]);
}

#[test]
fn an_overlong_cname_is_cut_not_fatal() {
    let t0 = Instant::now();
    let mut config = config(Latching::Strict, Some(PHONE));
    config.cname = "é".repeat(200); // 400 bytes
    let mut ch = Channel::new(config, t0);
    let sent = run_until(&mut ch, t0 + Duration::from_secs(4));
    let RtcpPacket::SourceDescription(sdes) = &rtcp_of(&sent[0].1)[1] else {
        panic!("SDES expected")
    };
    let cname = sdes.chunks[0].cname().unwrap();
    assert_eq!(cname.len(), 254);
    assert!(std::str::from_utf8(cname).is_ok());
}

#[test]
fn forward_needs_a_destination() {
    let t0 = Instant::now();
    let mut ch = Channel::new(config(Latching::Comedia, None), t0);
    assert_eq!(ch.forward(&source_packet(1, 1, 1), t0), None);
    assert_eq!(ch.quality().packets_sent, 0);
    // And no report goes anywhere either.
    assert!(run_until(&mut ch, t0 + Duration::from_secs(30)).is_empty());
}

#[test]
fn receiver_reports_while_only_receiving() {
    let t0 = Instant::now();
    let mut ch = outgoing(t0);
    let mut phone = Sender::new(PHONE, 0x5151, 1);
    let mut sent = Vec::new();
    for i in 0..1000u64 {
        let at = t0 + ms(20 * i);
        sent.extend(run_until(&mut ch, at));
        if i % 50 != 25 {
            phone.send(&mut ch, at); // 2 % lost
        } else {
            phone.packet();
        }
    }
    // First report: the initial interval, 2.5 s randomised by [0.5, 1.5) / (e - 3/2).
    let (first_at, first) = &sent[0];
    let first_delay = first_at.duration_since(t0).as_secs_f64();
    assert!((1.02..3.08).contains(&first_delay), "{first_delay}");
    assert_eq!(first.to, addr(PHONE));
    // Then every 5 s randomised: between 2.05 s and 6.16 s apart.
    for w in sent.windows(2) {
        let gap = w[1].0.duration_since(w[0].0).as_secs_f64();
        assert!((2.05..6.16).contains(&gap), "{gap}");
    }
    assert!(sent.len() >= 4, "{} reports in 20 s", sent.len());
    for (_, t) in &sent {
        let packets = rtcp_of(t);
        let RtcpPacket::ReceiverReport(rr) = &packets[0] else {
            panic!("RR expected, we sent nothing: {packets:?}");
        };
        assert_eq!(rr.ssrc, ch.ssrc());
        assert_eq!(rr.reports.len(), 1);
        assert_eq!(rr.reports[0].ssrc, Ssrc(0x5151));
        let RtcpPacket::SourceDescription(sdes) = &packets[1] else {
            panic!("SDES expected: {packets:?}");
        };
        assert_eq!(sdes.chunks[0].ssrc, ch.ssrc());
        assert!(sdes.chunks[0].cname().is_some());
    }
    let RtcpPacket::ReceiverReport(last) = &rtcp_of(&sent.last().unwrap().1)[0] else {
        unreachable!()
    };
    assert!(last.reports[0].cumulative_lost.get() >= 15);
    assert!(ch.quality().lost >= 19);
}

#[test]
fn sender_report_only_when_we_sent() {
    let t0 = Instant::now();
    let mut ch = outgoing(t0);
    let mut phone = Sender::new(PHONE, 0x5151, 1);
    // Sending for 4 s, then receiving only, for 30 s.
    let mut reports = Vec::new();
    for i in 0..1500u64 {
        let at = t0 + ms(20 * i);
        reports.extend(run_until(&mut ch, at));
        phone.send(&mut ch, at);
        if i < 200 {
            let p = source_packet(9, i as u16, 160 * i as u32);
            ch.forward(&p, at).unwrap();
        }
    }
    // SR exactly when we forwarded something (at 0, 20, ... 3980 ms) since the
    // previous report.
    let mut previous = 0;
    let mut seen = (0, 0);
    for (at, t) in &reports {
        let at = at.duration_since(t0).as_millis() as u64;
        let sent_since = (previous..at).any(|f| f % 20 == 0 && f <= 3980);
        let kind = rtcp_of(t)[0].packet_type();
        if sent_since {
            assert_eq!(kind, rtcp::TYPE_SR, "at {at} ms");
            seen.0 += 1;
        } else {
            assert_eq!(kind, rtcp::TYPE_RR, "at {at} ms");
            seen.1 += 1;
        }
        previous = at;
    }
    assert!(seen.0 >= 1 && seen.1 >= 2, "{seen:?}");
    let RtcpPacket::SenderReport(sr) = &rtcp_of(&reports[0].1)[0] else {
        unreachable!()
    };
    assert_eq!(sr.ssrc, ch.ssrc());
    assert!(sr.packet_count > 0 && sr.octet_count == sr.packet_count * 160);
    assert_eq!(sr.reports[0].ssrc, Ssrc(0x5151));
}

#[test]
fn round_trip_time_from_a_crafted_receiver_report() {
    let t0 = Instant::now();
    let mut config = config(Latching::Strict, Some(PHONE));
    config.ntp_at_start = NtpTime::from_unix(Duration::from_secs(1_780_000_000));
    let mut ch = Channel::new(config, t0);
    let mut phone = Sender::new(PHONE, 0x5151, 1);
    phone.send(&mut ch, t0);
    ch.forward(&source_packet(9, 1, 1), t0).unwrap();
    let (sr_at, sr) = run_until(&mut ch, t0 + Duration::from_secs(4))
        .into_iter()
        .next()
        .unwrap();
    let RtcpPacket::SenderReport(sr) = &rtcp_of(&sr)[0] else {
        unreachable!()
    };
    let lsr = sr.ntp_time.middle_32();
    let ours = ch.ssrc();
    // The phone held our SR 0.5 s; its RR arrives 0.6 s after we sent: RTT 100 ms.
    let rr = |last_sr| {
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: Ssrc(0x5151),
            reports: vec![ReportBlock {
                ssrc: ours,
                fraction_lost: 12,
                jitter: 80,
                last_sr,
                delay_since_last_sr: 32768,
                ..ReportBlock::default()
            }],
            extension: Bytes::new(),
        })
        .to_bytes()
        .unwrap()
    };
    events(&mut ch);
    let got = ch.receive(rr(lsr), addr(PHONE), sr_at + ms(600));
    assert_eq!(got, Received::Rtcp);
    let rtt = ch.quality().rtt.unwrap();
    assert!(rtt.abs_diff(ms(100)) < Duration::from_micros(50), "{rtt:?}");
    let [Event::RemoteReport(report)] = events(&mut ch)[..] else {
        panic!("one report event")
    };
    assert_eq!(report.fraction_lost, 12);
    assert_eq!(report.jitter, ms(10));
    // An LSR that is not one of ours gives no RTT (a stale or forged report).
    ch.receive(rr(lsr ^ 0x1234), addr(PHONE), sr_at + ms(700));
    assert_eq!(ch.quality().remote.unwrap().rtt, None);
    assert_eq!(ch.quality().rtt, Some(rtt), "the last measure stays");
    // RTCP from another host is foreign.
    assert_eq!(
        ch.receive(rr(lsr), addr(HIJACKER), sr_at + ms(700)),
        Received::Dropped(DropReason::Foreign)
    );
}

#[test]
fn far_end_sender_report_is_echoed_in_our_report() {
    let t0 = Instant::now();
    let mut ch = outgoing(t0);
    let mut phone = Sender::new(PHONE, 0x5151, 1);
    for i in 0..5 {
        phone.send(&mut ch, t0 + ms(20 * i));
    }
    let ntp = NtpTime(0xE000_0001_8000_0000);
    let sr = RtcpPacket::SenderReport(SenderReport {
        ssrc: Ssrc(0x5151),
        ntp_time: ntp,
        ..SenderReport::default()
    });
    let at = t0 + ms(100);
    assert_eq!(
        ch.receive(sr.to_bytes().unwrap(), addr(PHONE), at),
        Received::Rtcp
    );
    let (report_at, t) = run_until(&mut ch, t0 + Duration::from_secs(4))
        .into_iter()
        .next()
        .unwrap();
    let RtcpPacket::ReceiverReport(rr) = &rtcp_of(&t)[0] else {
        unreachable!()
    };
    let block = rr.reports[0];
    assert_eq!(block.last_sr, ntp.middle_32());
    let held = report_at.duration_since(at).as_secs_f64();
    let dlsr = f64::from(block.delay_since_last_sr) / 65536.0;
    assert!((held - dlsr).abs() < 0.001, "{held} vs {dlsr}");
}

#[test]
fn rtcp_without_mux_goes_to_the_next_port_then_where_it_comes_from() {
    let t0 = Instant::now();
    let mut config = config(Latching::Strict, Some(PHONE));
    config.rtcp_mux = false;
    let mut ch = Channel::new(config, t0);
    let sent = run_until(&mut ch, t0 + Duration::from_secs(4));
    assert_eq!(sent[0].1.to, addr("192.0.2.10:4001"));
    let rr = RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc: Ssrc(3),
        ..ReceiverReport::default()
    });
    assert_eq!(
        ch.receive_rtcp(
            rr.to_bytes().unwrap(),
            addr("192.0.2.10:4999"),
            t0 + ms(4100)
        ),
        Received::Rtcp
    );
    let sent = run_until(&mut ch, t0 + Duration::from_secs(12));
    assert_eq!(sent[0].1.to, addr("192.0.2.10:4999"));
    // RTP on the RTCP port is not RTCP.
    let rtp = Sender::new(PHONE, 1, 1).packet();
    assert_eq!(
        ch.receive_rtcp(rtp, addr(PHONE), t0 + ms(4200)),
        Received::Dropped(DropReason::Malformed)
    );
}

#[test]
fn rtp_timeout_once_then_rearmed_by_media() {
    let t0 = Instant::now();
    let mut config = config(Latching::Strict, Some(PHONE));
    config.rtp_timeout = Some(Duration::from_secs(2));
    let mut ch = Channel::new(config, t0);
    let mut phone = Sender::new(PHONE, 1, 1);
    let mut timeouts = Vec::new();
    let step = |ch: &mut Channel, until: Instant, timeouts: &mut Vec<Duration>| {
        while let Some(deadline) = ch.poll_timeout() {
            if deadline > until {
                break;
            }
            ch.handle_timeout(deadline);
            while ch.poll_transmit().is_some() {}
            for e in events(ch) {
                if e == Event::RtpTimeout {
                    timeouts.push(deadline.duration_since(t0));
                }
            }
        }
    };
    // Media for 1 s, then nothing until 10 s.
    for i in 0..50 {
        let at = t0 + ms(20 * i);
        step(&mut ch, at, &mut timeouts);
        phone.send(&mut ch, at);
    }
    step(&mut ch, t0 + Duration::from_secs(10), &mut timeouts);
    assert_eq!(timeouts, [ms(980 + 2000)]);
    // Media resumes at 10 s for 1 s, then stops again: a second timeout.
    for i in 0..50 {
        let at = t0 + Duration::from_secs(10) + ms(20 * i);
        step(&mut ch, at, &mut timeouts);
        phone.send(&mut ch, at);
    }
    step(&mut ch, t0 + Duration::from_secs(30), &mut timeouts);
    assert_eq!(timeouts, [ms(2980), ms(12_980)]);
    // No timeout while disabled (on hold), and counted afresh when enabled again.
    ch.set_rtp_timeout(None, t0 + Duration::from_secs(30));
    step(&mut ch, t0 + Duration::from_secs(60), &mut timeouts);
    ch.set_rtp_timeout(Some(Duration::from_secs(5)), t0 + Duration::from_secs(60));
    step(&mut ch, t0 + Duration::from_secs(70), &mut timeouts);
    assert_eq!(timeouts, [ms(2980), ms(12_980), ms(65_000)]);
}

#[test]
fn rtp_timeout_without_any_media() {
    let t0 = Instant::now();
    let mut config = config(Latching::Comedia, None);
    config.rtp_timeout = Some(Duration::from_secs(3));
    let mut ch = Channel::new(config, t0);
    let mut got = Vec::new();
    while let Some(deadline) = ch.poll_timeout() {
        if deadline > t0 + Duration::from_secs(20) {
            break;
        }
        ch.handle_timeout(deadline);
        got.extend(events(&mut ch).into_iter().map(|e| (deadline - t0, e)));
    }
    assert_eq!(got, [(Duration::from_secs(3), Event::RtpTimeout)]);
}

/// One received datagram of the property tests: well-formed RTP (so that latching is
/// exercised) or arbitrary bytes, from one of a few sources, some time after the last.
#[derive(Debug, Clone)]
enum Input {
    Rtp {
        source: usize,
        ssrc: u32,
        seq: u16,
        pt: u8,
    },
    Bytes {
        source: usize,
        bytes: Vec<u8>,
        rtcp_port: bool,
    },
}

const SOURCES: [&str; 5] = [PHONE, "192.0.2.10:4001", "192.0.2.10:4002", HIJACKER, NAT];

fn input() -> impl Strategy<Value = (Input, u16)> {
    let rtp = (
        0..SOURCES.len(),
        0u32..4,
        0u16..8,
        prop_oneof![Just(0u8), Just(TE), Just(13), 0u8..128],
    )
        .prop_map(|(source, ssrc, seq, pt)| Input::Rtp {
            source,
            ssrc,
            seq,
            pt,
        });
    let bytes = (
        0..SOURCES.len(),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(|(source, bytes, rtcp_port)| Input::Bytes {
            source,
            bytes,
            rtcp_port,
        });
    (prop_oneof![rtp, bytes], 0u16..1500)
}

/// Feeds the inputs; sequence numbers of each (source, SSRC) run on from the last,
/// plus the drawn step, so that in-order runs (probation) happen often.
fn drive(ch: &mut Channel, inputs: &[(Input, u16)], mut check: impl FnMut(&mut Channel)) {
    let t0 = Instant::now();
    let mut now = t0;
    let mut seqs = std::collections::HashMap::new();
    for (input, step_ms) in inputs {
        now += ms(u64::from(*step_ms));
        while let Some(deadline) = ch.poll_timeout() {
            if deadline > now {
                break;
            }
            ch.handle_timeout(deadline);
        }
        match input {
            Input::Rtp {
                source,
                ssrc,
                seq,
                pt,
            } => {
                let entry: &mut u16 = seqs.entry((*source, *ssrc)).or_default();
                *entry = entry.wrapping_add(seq.saturating_sub(3).max(1));
                let payload = if *pt == TE {
                    Bytes::from_static(&[5, 0x8A, 0, 160])
                } else {
                    Bytes::from_static(&[0; 20])
                };
                let p = RtpPacket::new(
                    PayloadType::new(*pt).unwrap(),
                    SeqNo(*entry),
                    RtpTimestamp(u32::from(*entry) * 160),
                    Ssrc(*ssrc),
                    payload,
                );
                let got = ch.receive(p.to_bytes(), addr(SOURCES[*source]), now);
                if let Received::Media(m) = got {
                    let _ = ch.forward(&m, now);
                }
            }
            Input::Bytes {
                source,
                bytes,
                rtcp_port,
            } => {
                let from = addr(SOURCES[*source]);
                let data = Bytes::copy_from_slice(bytes);
                if *rtcp_port {
                    ch.receive_rtcp(data, from, now);
                } else {
                    ch.receive(data, from, now);
                }
            }
        }
        while ch.poll_transmit().is_some() {}
        check(ch);
    }
    let _ = ch.quality();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever arrives from wherever, a strict channel stays on its SDP address and
    /// never reports a move; nothing panics.
    #[test]
    fn strict_latch_never_moves(inputs in proptest::collection::vec(input(), 0..200)) {
        let mut ch = Channel::new(config(Latching::Strict, Some(PHONE)), Instant::now());
        drive(&mut ch, &inputs, |ch| {
            assert!(ch.latched().is_none_or(|a| a == addr(PHONE)), "{:?}", ch.latched());
            assert_eq!(ch.destination(), Some(addr(PHONE)));
            while let Some(e) = ch.poll_event() {
                assert!(!matches!(e, Event::Relatched { .. }), "{e:?}");
            }
        });
    }

    /// In the comedia modes the latch may move, but only to a source that sent valid
    /// RTP, and SameIp never leaves the SDP host; nothing panics.
    #[test]
    fn comedia_latch_only_moves_by_the_rules(
        inputs in proptest::collection::vec(input(), 0..200),
        same_ip in any::<bool>(),
    ) {
        let mode = if same_ip { Latching::SameIp } else { Latching::Comedia };
        let mut ch = Channel::new(config(mode, Some(PHONE)), Instant::now());
        let mut before = None;
        drive(&mut ch, &inputs, |ch| {
            if same_ip {
                assert!(ch.destination().is_some_and(|a| a.ip() == addr(PHONE).ip()));
            }
            let events: Vec<Event> = std::iter::from_fn(|| ch.poll_event()).collect();
            let moves: Vec<&Event> = events
                .iter()
                .filter(|e| matches!(e, Event::Latched { .. } | Event::Relatched { .. }))
                .collect();
            let now = ch.latched();
            match moves[..] {
                [] => assert_eq!(now, before),
                [Event::Latched { addr }] => {
                    assert_eq!(before, None);
                    assert_eq!(now, Some(*addr));
                }
                [Event::Relatched { from, to }] => {
                    assert_ne!(from, to);
                    assert_eq!(now, Some(*to));
                }
                _ => panic!("{moves:?}"),
            }
            before = now;
        });
    }
}

/// Two channels facing each other over a simulated network (30 ms each way, a seeded
/// 5 % loss on every datagram, RTCP included): each sends a 20 ms stream to the other
/// for 60 s. Both measure the 60 ms round trip from the other's reports, and each
/// learns from the other's RRs the losses the other counted.
#[test]
fn two_channels_over_a_lossy_network() {
    const ONE_WAY: Duration = Duration::from_millis(30);
    let (a_addr, b_addr) = (addr("192.0.2.1:10000"), addr("192.0.2.2:20000"));
    let t0 = Instant::now();
    let make = |remote, random| {
        let mut c = ChannelConfig::new(PayloadType::PCMU, 8000, random);
        c.remote = Some(remote);
        c.latching = Latching::Strict;
        c.ntp_at_start = NtpTime::from_unix(Duration::from_secs(1_780_000_000 + random));
        Channel::new(c, t0)
    };
    let mut a = make(b_addr, 11);
    let mut b = make(a_addr, 22);
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut lost = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % 100 < 5
    };
    // In flight: (arrival, destination, datagram).
    let mut network: Vec<(Instant, SocketAddr, Bytes)> = Vec::new();
    let mut sent = [0u32; 2];
    for tick in 0..60_000u64 {
        let now = t0 + ms(tick);
        // Deliveries due now.
        let (due, later): (Vec<_>, Vec<_>) = network.into_iter().partition(|(at, _, _)| *at <= now);
        network = later;
        for (_, to, datagram) in due {
            if to == a_addr {
                a.receive(datagram, b_addr, now);
            } else {
                b.receive(datagram, a_addr, now);
            }
        }
        // Media every 20 ms from each side's player, then timers.
        for (i, ch) in [&mut a, &mut b].into_iter().enumerate() {
            if tick % 20 == 0 {
                let n = (tick / 20) as u16;
                let p = source_packet(0x100 + i as u32, n, 160 * u32::from(n));
                let t = ch.forward(&p, now).unwrap();
                sent[i] += 1;
                if !lost() {
                    network.push((now + ONE_WAY, t.to, t.payload));
                }
            }
            while ch.poll_timeout().is_some_and(|d| d <= now) {
                ch.handle_timeout(now);
            }
            while let Some(t) = ch.poll_transmit() {
                if !lost() {
                    network.push((now + ONE_WAY, t.to, t.payload));
                }
            }
        }
    }
    for (name, ch, other_sent) in [("a", &a, sent[1]), ("b", &b, sent[0])] {
        let q = ch.quality();
        let rtt = q.rtt.unwrap_or_else(|| panic!("{name}: no RTT"));
        // Reports go out on 1 ms ticks: the DLSR can be off by up to a tick.
        assert!(rtt.abs_diff(ms(60)) <= ms(2), "{name}: {rtt:?}");
        let lost = q.lost;
        assert!(
            (i64::from(other_sent) * 2 / 100..=i64::from(other_sent) * 8 / 100).contains(&lost),
            "{name}: {lost} of {other_sent}"
        );
        assert_eq!(
            q.packets_received as i64 + lost + 1,
            i64::from(other_sent),
            "{name}"
        );
        assert_eq!(q.foreign + q.malformed + q.learning, 0, "{name}");
    }
    // What each far end reported about our stream is what it counted (a report or
    // so ago).
    for (ours, theirs) in [(&a, &b), (&b, &a)] {
        let reported = ours.quality().remote.unwrap().cumulative_lost;
        let counted = theirs.quality().lost;
        assert!(
            (counted - 10..=counted).contains(&i64::from(reported)),
            "{reported} vs {counted}"
        );
    }
}
